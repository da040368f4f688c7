//! LLM providers (Ollama, OpenAI-compatible), prompt building and the verdict schema.
