"""What the guard is shown: the text of a prompt, a conversation, an LLM's output or stream chunk, and what cannot
be checked (typed errors, never an empty text). Used by the guard, the integrations and the service alike."""
