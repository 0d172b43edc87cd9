"""Guard families by name: ``get_family("guardreasoner")``, ``register_family(name, family)``.

Built in: ``guardreasoner`` (the default), ``wildguard``, ``llamaguard3`` (Llama Guard 3 8B's 14
categories) and ``llamaguard3-1b`` (the 1B's 13). A family is any object of the
:class:`~guardsdk.families.base.GuardFamily` protocol.
"""

from __future__ import annotations

from guardsdk.families.base import GuardFamily, neutralize_control_tokens
from guardsdk.families.guardreasoner import GuardReasonerFamily
from guardsdk.families.llamaguard3 import LlamaGuard3Family
from guardsdk.families.wildguard import WildGuardFamily

DEFAULT_FAMILY = "guardreasoner"
_REGISTRY: dict[str, GuardFamily] = {}


def register_family(name: str, family: GuardFamily, *, replace: bool = False) -> None:
    """Make ``family`` available as ``name`` (to ``Guard(..., family=name)`` and ``--family``)."""
    if not isinstance(family, GuardFamily):
        raise TypeError(f"{type(family).__name__} does not implement the GuardFamily protocol")
    if name in _REGISTRY and not replace:
        raise ValueError(f"a guard family named {name!r} is registered already")
    _REGISTRY[name] = family


def get_family(family: str | GuardFamily | None = None) -> GuardFamily:
    """The family registered as ``family`` (default: GuardReasoner); a family object is returned as is."""
    if family is None:
        family = DEFAULT_FAMILY
    if not isinstance(family, str):
        return family
    try:
        return _REGISTRY[family]
    except KeyError:
        raise ValueError(f"unknown guard family {family!r}; choose from {family_names()}") from None


def family_names() -> list[str]:
    """The registered family names."""
    return sorted(_REGISTRY)


register_family("guardreasoner", GuardReasonerFamily())
register_family("wildguard", WildGuardFamily())
register_family("llamaguard3", LlamaGuard3Family(categories=14))
register_family("llamaguard3-1b", LlamaGuard3Family(categories=13))

__all__ = ["DEFAULT_FAMILY", "GuardFamily", "family_names", "get_family", "neutralize_control_tokens",
           "register_family"]  # fmt: skip
