package mqtt

import (
	"crypto/tls"
	"fmt"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Subscriber is a plain MQTT subscription, for tools (`linesight watch`)
// and tests: what a PLC/SCADA gateway sees.
type Subscriber struct{ c paho.Client }

// Subscribe connects to broker and calls fn for every message on topic
// (wildcards allowed), from paho's goroutine.
func Subscribe(broker, clientID, topic string, t *tls.Config, user, pass string, fn func(topic string, payload []byte, retained bool)) (*Subscriber, error) {
	return SubscribeAll(broker, clientID, []string{topic}, t, user, pass, fn)
}

// SubscribeAll is Subscribe to several topic filters; the subscriptions
// are renewed whenever the connection is.
func SubscribeAll(broker, clientID string, topics []string, t *tls.Config, user, pass string, fn func(topic string, payload []byte, retained bool)) (*Subscriber, error) {
	return subscribe(true, broker, clientID, topics, t, user, pass, fn)
}

// SubscribeSession is Subscribe with a persistent session (MQTT clean
// session off): while the subscriber is away, or a broker with persistence
// restarts, the broker keeps what it took for it and delivers it on
// reconnect, as a PLC/SCADA gateway that must not miss a result is set up.
// clientID must be stable across reconnects for that.
func SubscribeSession(broker, clientID, topic string, t *tls.Config, user, pass string, fn func(topic string, payload []byte, retained bool)) (*Subscriber, error) {
	return subscribe(false, broker, clientID, []string{topic}, t, user, pass, fn)
}

func subscribe(clean bool, broker, clientID string, topics []string, t *tls.Config, user, pass string, fn func(topic string, payload []byte, retained bool)) (*Subscriber, error) {
	po := paho.NewClientOptions().AddBroker(broker).SetClientID(clientID).SetCleanSession(clean).
		SetAutoReconnect(true).SetMaxReconnectInterval(time.Second).SetConnectTimeout(5 * time.Second).
		// Tools publish again themselves (a push re-sends the blocks the
		// station asks for again); paho's own re-send on reconnect races
		// with its writer (see noResendStore).
		SetStore(noResendStore{paho.NewMemoryStore()})
	if user != "" {
		po.SetUsername(user).SetPassword(pass)
	}
	if t != nil {
		po.SetTLSConfig(t)
	}
	// Subscribe returns once the broker confirmed the subscriptions: a
	// tool that publishes a command next must hear its reply.
	subscribed := make(chan error, 1)
	po.SetOnConnectHandler(func(c paho.Client) {
		var err error
		for _, topic := range topics {
			tok := c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) { fn(m.Topic(), m.Payload(), m.Retained()) })
			if !tok.WaitTimeout(10*time.Second) && err == nil {
				err = fmt.Errorf("mqtt: subscribing to %s on %s: no answer", topic, broker)
			} else if tok.Error() != nil && err == nil {
				err = fmt.Errorf("mqtt: subscribing to %s on %s: %w", topic, broker, tok.Error())
			}
		}
		select {
		case subscribed <- err:
		default: // a reconnection: nobody waits
		}
	})
	c := paho.NewClient(po)
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("mqtt: connecting to %s: %v", broker, tok.Error())
	}
	select {
	case err := <-subscribed:
		if err != nil {
			c.Disconnect(0)
			return nil, err
		}
	case <-time.After(15 * time.Second):
		c.Disconnect(0)
		return nil, fmt.Errorf("mqtt: subscribing on %s: no answer", broker)
	}
	return &Subscriber{c: c}, nil
}

// Publish sends one message (commands from tools and tests).
func (s *Subscriber) Publish(topic string, qos byte, retained bool, payload []byte) error {
	t := s.c.Publish(topic, qos, retained, payload)
	if !t.WaitTimeout(5 * time.Second) {
		return fmt.Errorf("mqtt: publish to %s timed out", topic)
	}
	return t.Error()
}

// Send queues one message without waiting for the broker's
// acknowledgement, for messages the receiver asks for again when they do
// not arrive (a push's blocks): waiting on each would stall behind the
// ones a broken connection took with it.
func (s *Subscriber) Send(topic string, qos byte, retained bool, payload []byte) {
	s.c.Publish(topic, qos, retained, payload)
}

// Close disconnects.
func (s *Subscriber) Close() { s.c.Disconnect(250) }
