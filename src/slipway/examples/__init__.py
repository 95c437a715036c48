"""The example ML project Slipway releases out of the box."""
