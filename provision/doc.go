// Package provision knows where a satellite lives and how to reach it: a
// URL the user gives, or the local background satellite that provision
// starts on first use and finds again through a cached endpoint.
//
// Files (XDG_CONFIG_HOME and XDG_DATA_HOME are honoured):
//
//	$XDG_CONFIG_HOME/skypipe/token       the local satellite's auth token (0600)
//	$XDG_CONFIG_HOME/skypipe/local.json  its cached endpoint: URL and pid (0600)
//	$XDG_CONFIG_HOME/skypipe/local.lock  held while one is being started
//	$XDG_DATA_HOME/skypipe/store/        its JetStream store (0700)
//	$XDG_DATA_HOME/skypipe/satellite.log its log
package provision
