package mqtt

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// watchConn is the connection to the broker, watched on its way out: paho
// tells its store nothing when it answers a PUBREC with a PUBREL (see
// session), so the outgoing bytes are followed packet by packet and the
// session records each release durably before the PUBREL's bytes are
// written. On its way in, only the CONNACK is read: paho does not tell
// whether the broker kept the session on a reconnection, and resumes the
// stored entries as if it had.
type watchConn struct {
	net.Conn
	s *session
	w pktWatch
	// ack collects the first bytes the broker sends: a CONNACK is fixed
	// header 0x20, remaining length 2, acknowledge flags (bit 0: session
	// present), return code.
	ack    [4]byte
	ackN   int
	ackGot bool
}

// Read passes the broker's bytes to paho, telling the session, before
// paho has the CONNACK, when the broker accepted the connection without
// the station's session.
func (c *watchConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if !c.ackGot && n > 0 {
		k := copy(c.ack[c.ackN:], b[:n])
		c.ackN += k
		if c.ackN == len(c.ack) {
			c.ackGot = true
			if connackWithoutSession(c.ack) {
				c.s.sessionLost()
			}
		}
	}
	return n, err
}

// connackWithoutSession reports whether p is a CONNACK accepting the
// connection (return code 0) with session present 0.
func connackWithoutSession(p [4]byte) bool {
	return p[0] == 0x20 && p[1] == 2 && p[2]&1 == 0 && p[3] == 0
}

func (c *watchConn) Write(b []byte) (int, error) {
	rels, pubs := c.w.scan(b)
	for _, id := range rels {
		c.s.release(id)
	}
	n, err := c.Conn.Write(b)
	for _, id := range pubs {
		c.s.wrote(id)
	}
	return n, err
}

// pktWatch follows an MQTT byte stream across writes and reports the
// packet ids of the PUBRELs and of the PUBLISH packets (QoS 1 and 2) that
// complete in it. paho writes well-formed packets; a stream it
// cannot follow (a remaining length over four bytes) stops the watch
// rather than misreading it.
type pktWatch struct {
	state   int // 0: fixed header byte, 1: remaining length, 2: body
	typ     byte
	remain  int // body bytes left
	mul     int
	lenN    int
	pos     int // body bytes seen
	id      uint16
	qos     byte
	topic   int // a PUBLISH's topic length
	pubID   uint16
	stopped bool
}

func (w *pktWatch) scan(b []byte) (rels, pubs []uint16) {
	for i := 0; i < len(b) && !w.stopped; {
		switch w.state {
		case 0:
			w.typ, w.remain, w.mul, w.lenN, w.pos, w.id = b[i]>>4, 0, 1, 0, 0, 0
			w.qos, w.topic, w.pubID = b[i]>>1&3, 0, 0
			w.state = 1
			i++
		case 1:
			v := b[i]
			i++
			w.remain += int(v&0x7f) * w.mul
			w.mul *= 128
			w.lenN++
			if v&0x80 != 0 {
				if w.lenN == 4 {
					w.stopped = true
				}
				continue
			}
			w.state = 2
			if w.remain == 0 {
				w.state = 0
			}
		case 2:
			if w.typ == 6 && w.pos < 2 { // PUBREL: its packet id
				w.id = w.id<<8 | uint16(b[i])
				w.pos++
				w.remain--
				i++
				if w.pos == 2 {
					rels = append(rels, w.id)
				}
			} else if w.typ == 3 && w.qos > 0 && (w.pos < 2 || w.pos >= 2+w.topic && w.pos < 4+w.topic) {
				// PUBLISH: topic length (2 bytes), topic, packet id (2 bytes)
				if w.pos < 2 {
					w.topic = w.topic<<8 | int(b[i])
				} else {
					w.pubID = w.pubID<<8 | uint16(b[i])
				}
				w.pos++
				w.remain--
				i++
				if w.pos == 4+w.topic {
					pubs = append(pubs, w.pubID)
				}
			} else {
				n := min(w.remain, len(b)-i)
				if w.typ == 3 && w.qos > 0 && w.pos >= 2 && w.pos < 2+w.topic {
					n = min(n, 2+w.topic-w.pos) // stop at the packet id
				}
				w.remain -= n
				w.pos += n
				i += n
			}
			if w.remain == 0 {
				w.state = 0
			}
		}
	}
	return rels, pubs
}

// openWatched dials the broker as paho would for the schemes the station
// accepts (tcp, ssl and their aliases, ws, wss) and wraps the connection.
// paho's own dialer also honours proxy environment variables for tcp;
// brokers on a plant network are reached directly.
func openWatched(s *session) paho.OpenConnectionFunc {
	return func(uri *url.URL, o paho.ClientOptions) (net.Conn, error) {
		d := o.Dialer
		if d == nil {
			d = &net.Dialer{Timeout: o.ConnectTimeout}
		}
		var conn net.Conn
		var err error
		switch uri.Scheme {
		case "tcp", "mqtt":
			conn, err = d.Dial("tcp", uri.Host)
		case "ssl", "tls", "mqtts", "mqtt+ssl", "tcps":
			conn, err = tls.DialWithDialer(d, "tcp", uri.Host, o.TLSConfig)
		case "ws", "wss":
			u := *uri
			u.User = nil
			var tc *tls.Config
			if uri.Scheme == "wss" {
				tc = o.TLSConfig
			}
			conn, err = paho.NewWebsocket(u.String(), tc, o.ConnectTimeout, o.HTTPHeaders, o.WebsocketOptions)
		default:
			return nil, fmt.Errorf("mqtt: unsupported broker scheme %q", uri.Scheme)
		}
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.conns++
		s.mu.Unlock()
		return &watchConn{Conn: conn, s: s}, nil
	}
}
