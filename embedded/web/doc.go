// Package web is the satellite's HTTP face: pipes for clients that have no
// skypipe, such as curl, a CI container or a phone's browser, and the front
// door of NATS over WebSocket for skypipe clients behind HTTPS-only
// networks. It knows HTTP and uses pipes through their public API, over
// connections to the satellite inside the same process.
//
// # Requests
//
//	PUT or POST /p/NAME   send the request body as one item (any size,
//	                      streamed: chunked or with a length)
//	GET /p/NAME           take one item, as `skypipe NAME` does;
//	                      ?follow=1 goes on with the next items (-f),
//	                      ?timeout=30s ends with 504 when nothing arrives
//	DELETE /p/NAME        drop the items the pipe keeps (`skypipe rm`);
//	                      ?item=ID drops that one (`skypipe rm NAME --item ID`)
//	GET /pipes            the pipes that keep items, as JSON (`skypipe ls`)
//	GET /                 a page to send a file or take an item, in a browser
//	WebSocket upgrade     NATS over WebSocket, to the satellite's own
//	                      listener on loopback (same token, in CONNECT)
//
// NAME is the pipe's name, percent-encoded; /p/ alone is the default pipe.
//
// # Whole or visibly broken
//
// A receiver's status line waits for the item's first byte: an item that
// breaks before it, or a timeout, is an error status with a message. Once
// the body has started, an item that breaks ends the response without its
// last chunk (HTTP/1.1) or with a stream reset (HTTP/2), never with a clean
// end, so curl exits non-zero and a browser's download fails. A body of
// unknown length needs chunked encoding, so HTTP/1.0 receivers are refused.
//
// # Tokens
//
// Every request but the page carries Authorization: Bearer TOKEN, either
// the satellite's token (all pipes, every request) or a narrow token
// (token.go) limited to some pipe names and to sending or taking. A token in
// the URL is refused: URLs end up in logs and browser histories. Nothing
// logged holds a token.
package web
