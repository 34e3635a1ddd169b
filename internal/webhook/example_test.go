package webhook_test

import (
	"context"
	"fmt"
	"time"

	"github.com/heraldhq/herald/internal/webhook"
)

// The signature of a delivery, on the example of the Standard Webhooks
// specification.
func ExampleSign() {
	sig, err := webhook.Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
		time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if err != nil {
		panic(err)
	}
	fmt.Println(sig)
	// Output: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
}

// A guard refuses what a webhook must not reach, and says why.
func ExampleGuard_CheckURL() {
	g := webhook.NewGuard(nil)
	_, err := g.CheckURL(context.Background(), "http://169.254.169.254/latest/meta-data")
	fmt.Println(err)
	// Output: 169.254.169.254, a link-local address: webhooks may not reach it unless --webhook-allow-nets names it
}
