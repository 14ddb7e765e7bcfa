// Package tests holds skypipe's end-to-end tests: testscript files in
// testdata/, each named after the command and case it proves, run against
// the built skypipe binary and a real satellite (an embedded NATS server
// with JetStream). See main_test.go for the commands the scripts can use.
package tests
