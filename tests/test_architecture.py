"""The shape of the package: what it exports, no import circle, the moved modules, and the seams a user extends
(a guard family and a detector of one's own, from outside the package)."""

from __future__ import annotations

import ast
import importlib
import warnings
from pathlib import Path

import pytest

import guardsdk
from guardsdk import Guard, Policy
from guardsdk.detectors import MODES, Cascade, Detector, Ensemble, GenerativeDetector, VerdictFirst, build_detector
from guardsdk.detectors.classifier.detector import ClassifierDetector
from guardsdk.detectors.resolve import ResolvedModel
from guardsdk.families import register_family
from guardsdk.families.guardreasoner import GuardReasonerFamily
from guardsdk.integrations.streaming import StreamConfig
from guardsdk.texts.conversation import conversation_to_pair
from guardsdk.verdict import verdict_from_labels

ROOT = Path(__file__).resolve().parents[1]

#: What ``from guardsdk import ...`` offers: a change here is a change of the public API (as httpx pins its own).
EXPORTED = [
    "PROMPT_HARM", "REFUSAL", "RESPONSE_HARM", "TASKS", "BackendError", "Decision", "Failure", "Guard", "GuardBlocked",
    "GuardError", "InvalidInputError", "Label", "LongInput", "ModelNotFoundError", "OnUndecided", "OnUnsafe",
    "ParseStatus", "Policy", "Task", "UncheckedFieldError", "UnguardedEndpointError", "Verdict", "VerdictCache",
    "__version__", "register_family", "scan",
]  # fmt: skip


def test_the_exported_names_are_pinned_and_each_exists():
    assert guardsdk.__all__ == EXPORTED
    assert all(hasattr(guardsdk, name) for name in EXPORTED)
    assert guardsdk.__version__ not in ("", "0.1.0") or guardsdk.__version__ == importlib.metadata.version("guardsdk")


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "trainer":
        parts[0] = "guardsdk_trainer"
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package modules ``path`` imports anywhere (functions too), except under ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
               and getattr(block.test, "id", "") == "TYPE_CHECKING" for node in ast.walk(block)}  # fmt: skip
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:  # a submodule, or the module
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                     for a in node.names]  # fmt: skip
        found |= {name for name in names if name in modules}
    return found


def test_the_top_level_holds_at_most_12_modules():
    top = sorted(p.stem for p in (ROOT / "guardsdk").glob("*.py"))
    assert len(top) <= 12, top


def test_no_module_is_over_300_lines():
    files = [*(ROOT / "guardsdk").rglob("*.py"), *(ROOT / "trainer").rglob("*.py")]
    long = {str(p.relative_to(ROOT)): n for p in files if (n := len(p.read_text(encoding="utf-8").splitlines())) > 300}
    assert not long, long


def test_no_import_circle_in_the_package():
    files = [p for p in (ROOT / "guardsdk").rglob("*.py")] + list((ROOT / "trainer").rglob("*.py"))
    by_module = {_module_of(p): p for p in files}
    graph = {module: _imports(path, set(by_module)) - {module} for module, path in by_module.items()}
    state: dict[str, int] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in graph[module]:
            if state.get(target) == 1:
                cycle = trail[trail.index(target) :] if target in trail else trail
                pytest.fail(f"import circle: {' -> '.join([*cycle, target])}")
            if target not in state:
                visit(target, [*trail, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


@pytest.mark.parametrize(
    ("old", "new"),
    [("guardsdk.cascade", Cascade), ("guardsdk.verdict_first", VerdictFirst), ("guardsdk.detector", GenerativeDetector),
     ("guardsdk.streaming", StreamConfig), ("guardsdk.model_resolution", ResolvedModel),
     ("guardsdk.conversation", conversation_to_pair), ("guardsdk.families.classifier.detector", ClassifierDetector)],
)  # fmt: skip
def test_moved_modules_still_import_for_one_release_and_say_where_they_went(old, new):
    import sys

    sys.modules.pop(old, None)
    wing = ".".join(new.__module__.split(".")[:2])  # e.g. guardsdk.detectors
    with pytest.warns(DeprecationWarning, match=f"moved to {wing}"):
        module = importlib.import_module(old)
    assert getattr(module, new.__name__) is new  # the same object, not a second copy
    with pytest.warns(DeprecationWarning, match="guardsdk.detectors"):
        assert guardsdk.Ensemble is Ensemble


def test_build_detector_composes_each_mode():
    from security.scripted import ScriptedGuardModel

    assert MODES == ("single", "cascade", "verdict_first", "needed_tasks")
    assert isinstance(build_detector(ScriptedGuardModel()), GenerativeDetector)
    assert isinstance(build_detector([ScriptedGuardModel(), ScriptedGuardModel()]), Ensemble)
    with pytest.raises(ValueError, match="mode must be one of"):
        build_detector(ScriptedGuardModel(), mode="fastest")
    with pytest.raises(ValueError, match="needs a reasoning guard"):
        build_detector(None, "classifier", "cascade")
    assert Guard(ScriptedGuardModel()).mode == "single"


class ShoutingFamily(GuardReasonerFamily):
    """A family of one's own: GuardReasoner's format, but text in capitals is harmful."""

    name = "shouting"

    def parse(self, outputs, *, has_response, conversation=None):
        shouted = conversation is not None and any(word.isupper() and len(word) > 3 for word in conversation.split())
        return verdict_from_labels({"prompt_harm": "harmful" if shouted else "unharmful"}, has_response=has_response,
                                   raw=outputs[0], family=self.name)  # fmt: skip


class LengthDetector:
    """A detector of one's own: a prompt over 20 words is harmful (no model at all)."""

    name = "length"

    def detect(self, pairs, policy, deadline):
        return [verdict_from_labels({"prompt_harm": "harmful" if len(p.split()) > 20 else "unharmful"},
                                    has_response=r is not None, raw="counted words") for p, r in pairs]  # fmt: skip

    async def adetect(self, pairs, policy, deadline):
        return self.detect(pairs, policy, deadline)

    def close(self) -> None:
        pass


def test_a_family_and_a_detector_from_outside_the_package_plug_in_without_editing_it(monkeypatch):
    from security.scripted import ScriptedGuardModel

    from guardsdk import families

    monkeypatch.setattr(families, "_REGISTRY", dict(families._REGISTRY))  # registered for this test only
    register_family("shouting", ShoutingFamily())
    shouting = Guard(ScriptedGuardModel(), family="shouting", policy=Policy(on_unsafe="annotate"))
    assert shouting.check("HELLO there").prompt_harmful is True and shouting.check("hello").prompt_harmful is False
    assert isinstance(LengthDetector(), Detector)
    counting = Guard(LengthDetector(), policy=Policy(on_unsafe="annotate"))
    assert counting.check("word " * 30).allowed is False and counting.check("short").allowed is True
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the supported seams warn about nothing
        Guard([LengthDetector(), ScriptedGuardModel()], policy=Policy(on_unsafe="annotate")).check("short")
