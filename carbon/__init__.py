"""Carbon accounting domain: units, counters, factors, emissions. Pure: no I/O, no clock."""
