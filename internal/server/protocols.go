package server

import (
	"crypto/tls"
	"fmt"
	"net/http"
)

// configureProtocols picks what the HTTP server speaks. With --tls-cert and
// --tls-key: HTTPS, negotiating HTTP/2 or HTTP/1.1 by ALPN. Without:
// HTTP/1.1 and h2c with prior knowledge, for clients and proxies that speak
// HTTP/2 in the clear. HTTP/2 multiplexes every stream of a page on one
// connection, which lifts browsers' six-connections-per-origin limit of
// HTTP/1.1. The certificate is loaded here so a bad file fails the start,
// not the first handshake.
func (s *Server) configureProtocols() error {
	var p http.Protocols
	p.SetHTTP1(true)
	if s.cfg.TLSCert == "" {
		p.SetUnencryptedHTTP2(true)
		s.http.Protocols = &p
		return nil
	}
	p.SetHTTP2(true)
	s.http.Protocols = &p
	cert, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
	if err != nil {
		return fmt.Errorf("load --tls-cert and --tls-key: %w", err)
	}
	s.http.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	return nil
}

// serveHTTP serves on the bound listener, over TLS when configured.
func (s *Server) serveHTTP() error {
	if s.http.TLSConfig != nil {
		return s.http.ServeTLS(s.ln, "", "") // the certificate is in TLSConfig
	}
	return s.http.Serve(s.ln)
}

// URL is the server's base URL, like https://127.0.0.1:8443.
func (s *Server) URL() string {
	if s.cfg.TLSCert != "" {
		return "https://" + s.Addr()
	}
	return "http://" + s.Addr()
}
