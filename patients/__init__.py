"""The Patients API package: one module per concern, one blueprint per endpoint group."""
