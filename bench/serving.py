"""`make bench`, serving part: /predict vs a bare uvicorn hello-world, micro-batching on vs off.

Writes OUT/serving.json and OUT/serving.md (see slipway.bench.serving) and prints the markdown.
"""

from slipway.bench.cli import simple_main

if __name__ == "__main__":
    simple_main(
        "serving",
        description="/predict vs a bare uvicorn hello-world, micro-batching on vs off.",
        quick_help="sub-second load windows: checks the plumbing, not speed",
    )
