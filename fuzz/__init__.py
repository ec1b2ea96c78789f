"""Coverage-guided fuzzing of mailgw's readers of untrusted input (docs/fuzzing.md)."""
