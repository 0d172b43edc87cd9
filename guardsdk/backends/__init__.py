"""Model backends: llama.cpp (GGUF), Hugging Face transformers, OpenAI-compatible servers."""

from guardsdk.backends.base import Backend, Generation

__all__ = ["Backend", "Generation"]
