// Command healthcheck is the container healthcheck of the Docker image, which has no shell and
// no curl: it GETs a URL (default http://127.0.0.1:8080/readyz) and exits 0 when the answer is
// 2xx, 1 otherwise.
//
//	healthcheck [URL]
package main

import (
	"fmt"
	"net/http"
	"os"
	"time"
)

func main() {
	url := "http://127.0.0.1:8080/readyz"
	if len(os.Args) > 1 {
		url = os.Args[1]
	}
	client := &http.Client{Timeout: 3 * time.Second}
	res, err := client.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(1)
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		fmt.Fprintln(os.Stderr, "healthcheck:", url, "answered", res.Status)
		os.Exit(1)
	}
}
