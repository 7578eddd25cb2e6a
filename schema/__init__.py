"""The shared language of agent and server: enums, wire models, validation, migrations."""
