"""notes-assistant: ask a folder of study notes, get answers cited to file and line."""

__version__ = "0.1.0"
