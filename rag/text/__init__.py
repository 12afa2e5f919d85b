"""Text primitives shared by the stages: `sentences` (sentence spans), `words` (content words)."""
