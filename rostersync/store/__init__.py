"""The Educator Portal store: models, engine and migrations."""
