"""Coverage-guided fuzzing of trissh's parsers and state machines (issue 12, item 1).

``python -m fuzz <target>`` runs one target under atheris (libFuzzer for Python);
``tests/test_fuzz_short.py`` runs every target briefly under hypothesis inside the suite.
See ``fuzz/README.md``.
"""
