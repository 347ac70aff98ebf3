"""Data layer: reading/writing tables, schemas, id vocabularies, sparse matrices, splits."""
