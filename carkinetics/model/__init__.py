"""The model language: safe expressions, loading and validation of model files, code generation."""
