"""The connector: consumes run requests, crawls sources through plug-ins, reports what it observes."""
