"""The model language: safe expressions, validation of model files, code generation."""
