"""Benchmarks: one module per unit, each with ``run(quick: bool) -> dict``.

``python -m benchmarks <unit>|all [--quick]`` writes ``benchmarks/results/<unit>.json``
and ``<unit>.md`` (a markdown table) with the machine's description.
"""
