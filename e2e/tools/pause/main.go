// Command pause waits for SIGTERM or SIGINT and exits 0. As PID 1 of a pod sandbox it must
// catch those itself: the kernel ignores unhandled signals sent to PID 1.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
