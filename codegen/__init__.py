"""Build-time code generator: renders spec/ into generated/ibkr_sdk/. Not part of the installed package."""
