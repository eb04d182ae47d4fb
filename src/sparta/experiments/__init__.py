"""Experiments: recipes that compose the pillars (the report card's variants and scorers)."""
