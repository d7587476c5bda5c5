"""Extensions written the way a user adds one: each file registers ONE new entry and nothing else.

tests/test_extensions.py (and the metric and tracker tests) import them, train with the new name in
the config and unregister them afterwards. Each counts its own use in `CALLS`.
"""
