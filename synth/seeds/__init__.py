"""Seeds: corpus walking, languages, snippet extraction."""
