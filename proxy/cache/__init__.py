"""The response cache: identical deterministic generations answered from storage."""
