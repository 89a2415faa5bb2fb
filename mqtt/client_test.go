package mqtt

import (
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// TestStoreKeepsNoOutboundPublish: paho gets nothing to re-send on its own
// (the outbox re-sends), while inbound packets are stored as usual.
func TestStoreKeepsNoOutboundPublish(t *testing.T) {
	s := noResendStore{paho.NewMemoryStore()}
	s.Open()
	defer s.Close()
	pub := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	pub.Qos, pub.MessageID = 1, 7
	s.Put("o.7", pub)
	if got := s.Get("o.7"); got != nil {
		t.Fatalf("outbound publish stored: %v", got)
	}
	s.Put("i.7", pub)
	if s.Get("i.7") == nil {
		t.Fatal("inbound publish not stored")
	}
	rel := packets.NewControlPacket(packets.Pubrel).(*packets.PubrelPacket)
	rel.MessageID = 8
	s.Put("o.8", rel)
	if s.Get("o.8") == nil {
		t.Fatal("outbound PUBREL not stored")
	}
}
