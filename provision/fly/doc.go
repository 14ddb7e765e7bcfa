// Package fly deploys a skypipe satellite to Fly.io and finds it again. It
// knows Fly.io's Machines API, Fly's image registry and the shape of the
// satellite's machine, and nothing of pipes.
//
// What a deployment holds, all in one Fly app (named skypipe-XXXXXXXX
// unless the user names it):
//
//   - the image: a release's own (ReleasedImage, ghcr.io/skypipe/skypipe:
//     VERSION, pinned by digest) when the client is that release and the
//     image holds its very binary (the same manifest digest), or when the
//     client has no linux/amd64 binary to push (macOS, Windows, arm64); else
//     registry.fly.io/APP:skypipe-HASH, one layer holding the static
//     linux/amd64 skypipe binary at /skypipe, pushed by this package
//     (image.go). Either way the satellite runs the client's version;
//   - a volume "skypipe_data" mounted at /data for the JetStream store;
//   - a dedicated IPv6 address (free) and either Fly's shared IPv4 (free)
//     or, when asked, a dedicated IPv4 address (billed): the shared IPv4
//     routes HTTP and TLS by name only, so it carries the HTTPS service
//     below and not raw NATS, whose client sends no TLS before the server's
//     INFO line;
//   - app secrets: SKYPIPE_TOKEN (the clients' token, an environment
//     variable of the satellite), SKYPIPE_TLS_CERT_B64 and
//     SKYPIPE_TLS_KEY_B64 (written to files by Fly at boot) and
//     SKYPIPE_TOKEN_B64 (the token again, as a 0600 file the satellite's own
//     binary prints when Find asks through the Machines API's exec call);
//   - one machine, "skypipe-satellite", running `skypipe serve` with TLS on
//     0.0.0.0:4222, raw TCP passed through by Fly's proxy, and its HTTP
//     face in plain HTTP on 0.0.0.0:8080 behind Fly's proxy, which ends
//     TLS on 443 with Fly's own certificate for APP.fly.dev (handlers tls
//     and http): NATS over WebSocket (wss://APP.fly.dev), curl and
//     browsers. Restart policy always, and metadata marking it as a skypipe
//     satellite and carrying the public CA certificate that clients pin
//     on raw NATS.
//
// Secrets are write-only in Fly.io, so a second machine holding a token for
// the same organization recovers the join material as follows: the CA
// certificate (public) from the machine's metadata, the token by running
// TokenCommand inside the machine through the exec endpoint. Nothing secret
// is stored in metadata, which any reader of the app's machines can see.
//
// Every call goes through the API interface; Client is its HTTP
// implementation against https://api.machines.dev/v1 and registry.fly.io.
package fly
