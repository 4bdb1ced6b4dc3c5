"""Stage images: their recipes and tags, building them, and finding (or pulling, or building) the one a stage needs."""
