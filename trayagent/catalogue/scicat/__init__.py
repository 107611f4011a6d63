"""The SciCat catalogue and its login. Imported only where SciCat is chosen (it needs requests)."""
