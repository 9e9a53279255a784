"""Helpers for tests and GPU checks: tiny random Qwen models built offline from configs."""
