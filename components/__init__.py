"""One ComponentResource per concern of the agent platform."""
