"""Tools around the guard models: tiny random models for tests and demos, and Hugging Face to GGUF conversion."""
