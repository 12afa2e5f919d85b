"""What the backends that talk to an OpenAI-compatible server share: URLs, the server's own
words in an error, and counting tokens the server's way."""
