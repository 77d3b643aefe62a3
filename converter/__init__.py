"""The conversion engine: read Paddle files, map onto torch modules, verify, save."""
