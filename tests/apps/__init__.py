"""Apps served in tests beside the built-in one (tests.apps.giftcards is docs/apps.md's example)."""
