"""The live web console at /console: server-rendered pages over the core services, for people with an API key."""
