"""The FieldVault server: master archive, sync API and admin CLI."""
