"""`make bench`, validation part: the generated suite on fresh samples and on corrupted batches.

Writes OUT/validation.json and OUT/validation.md (see slipway.bench.validation) and prints the markdown.
"""

from __future__ import annotations

from slipway.bench.cli import simple_main

if __name__ == "__main__":
    simple_main(
        "validation",
        description=__doc__.splitlines()[0] if __doc__ else "",
        quick_help="a dozen samples per reference: checks the plumbing, not rates",
    )
