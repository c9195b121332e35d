"""Proof that Pants' remote cache serves a second checkout: counters, verdicts, the proof run."""
