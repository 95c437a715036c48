"""A team's own project: `slipway init` writes what a release needs from one data file."""
