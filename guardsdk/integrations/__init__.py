"""How apps use guardsdk: a decorator, an OpenAI client wrapper, LangChain runnables, streaming checks."""
