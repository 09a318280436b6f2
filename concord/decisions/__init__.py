"""Shared decision making: decision aids (content as data), values, the SURE test, decisions
recorded into the care plan."""
