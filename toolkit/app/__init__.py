"""dtk's top floor: the CLI, `dtk run` (local and Ray), `dtk eval`, tables and plots.

It may import every other layer; nothing imports it (import-linter checks both in CI).
"""
