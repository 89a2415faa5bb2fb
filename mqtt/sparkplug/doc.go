// Package sparkplug is a Sparkplug B 3.0 edge node: Linesight's results,
// PLC handshake and recipe as metrics a SCADA host (Ignition's MQTT
// Engine, any Eclipse Sparkplug host application) discovers and reads
// without configuration, beside the plain JSON topics of package mqtt.
//
// # Wire format
//
// sparkplug_b.proto is the payload written from the specification
// (chapter 6); sparkplug_b.pb.go is generated from it (gen.go). metric.go
// maps Linesight's values to it: Metric, Table (a DataSet) and Template,
// and decodes the commands a host sends (NCMD, DCMD) with limits on
// everything, so that a hostile payload is an error, never a panic.
//
// # Session rules (spec chapter 5 and 6, the "tck-id" assertions)
//
// An EdgeNode keeps one MQTT connection of its own (its own client id):
//
//   - CONNECT carries NDEATH as the will (QoS 1, not retained) with the
//     bdSeq metric; bdSeq counts CONNECT packets modulo 256 and persists
//     across restarts when a file is given, so that a host never pairs a
//     new NBIRTH with an old process's will
//     [tck-id-topics-ndeath-payload, tck-id-payloads-ndeath-bdseq].
//   - Clean session on [tck-id-principles-persistence-clean-session-311].
//   - Before any birth it subscribes to NCMD, DCMD and, with a primary
//     host, spBv1.0/STATE/<host_id> (QoS 1); with a primary host it
//     publishes births only after an "online": true STATE whose timestamp
//     is not older than the last one seen; an "online": false makes it
//     publish NDEATH, disconnect and move to the next server
//     [tck-id-message-flow-edge-node-birth-publish-phid-wait,
//     tck-id-operational-behavior-primary-application-state-with-multiple-servers-walk].
//   - NBIRTH (QoS 0, seq 0, bdSeq, "Node Control/Rebirth",
//     "Node Control/Next Server", template definitions) then DBIRTH;
//     every later NDATA, DDATA and DBIRTH takes the next seq, 255 wraps
//     to 0, across node and device messages [tck-id-payloads-sequence-num-incrementing].
//   - Births carry names and aliases; data messages carry aliases only,
//     without datatype [tck-id-payloads-alias-data-cmd-requirement,
//     tck-id-payloads-metric-datatype-not-req].
//   - "Node Control/Rebirth" = true republishes NBIRTH (seq 0, the same
//     bdSeq: the will registered with the broker is unchanged) and every
//     DBIRTH; "Node Control/Next Server" = true ends the session (NDEATH,
//     DISCONNECT) and connects to the next configured server.
//   - A clean stop publishes NDEATH before DISCONNECT
//     [tck-id-operational-behavior-edge-node-intentional-disconnect-ndeath].
//
// Only package mqtt and this package import the MQTT library
// (internal/archtest).
package sparkplug
