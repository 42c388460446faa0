"""outdial: outbound AI-voice call campaigns, scheduled in the callee's time."""

__version__ = "0.1.0"
