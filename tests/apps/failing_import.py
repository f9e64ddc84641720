"""An app whose module fails while it is imported (refused by `load_apps`, naming the cause)."""

raise RuntimeError("the app's settings file is missing")
