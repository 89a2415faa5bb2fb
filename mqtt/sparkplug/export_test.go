package sparkplug

// DeathPayloadForTest is deathPayload for the wire-bytes test.
var DeathPayloadForTest = deathPayload
