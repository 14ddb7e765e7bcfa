// Package provision knows where a satellite lives and how to reach it: a
// URL or natscli context the user gives, a remote satellite deployed with
// skypipe's own CA (over ssh: ssh.go) or joined with a join string, or the
// local background satellite that provision starts on first use and finds
// again through a cached endpoint.
//
// A remote satellite always speaks TLS with a certificate from a CA skypipe
// makes for it (tls.go); clients trust that CA only (they pin it), and
// present a token.
//
// Files (XDG_CONFIG_HOME and XDG_DATA_HOME are honoured):
//
//	$XDG_CONFIG_HOME/skypipe/token           the local satellite's auth token (0600)
//	$XDG_CONFIG_HOME/skypipe/local.json      its cached endpoint: URL and pid (0600)
//	$XDG_CONFIG_HOME/skypipe/local.lock      held while one is being started
//	$XDG_CONFIG_HOME/skypipe/satellite.json  the remote satellite in use: kind, URL,
//	                                         token, pinned CA (and its key where it
//	                                         was deployed from), what --reset needs (0600)
//	$XDG_DATA_HOME/skypipe/store/            the local satellite's JetStream store (0700)
//	$XDG_DATA_HOME/skypipe/satellite.log     its log
//
// On a host deployed over ssh:
//
//	~/.local/bin/skypipe                           the binary
//	$XDG_CONFIG_HOME/skypipe/satellite/            token, cert.pem, key.pem (0700, files 0600)
//	$XDG_DATA_HOME/skypipe/satellite/store/        the JetStream store
//	$XDG_DATA_HOME/skypipe/satellite/satellite.log its log; serve.pid without systemd
//	~/.config/systemd/user/skypipe-satellite.service  the user unit, with systemd
package provision
