// The fixed pool of generic prompts whose keys are every indexing neuron's standing negatives:
// it has to span the formats users send (templated questions, raw questions, completion
// sentences, chatty requests). Written for this project from general knowledge; nothing here
// comes from any evaluation set, and no benchmark's own locality format (ZsRE's `nq question:`)
// is in it: that would tune the metric, not the product. A deployment's own traffic comes in
// through the router's reservoir (TrafficKeys).

public enum GenericPrompts {
    /// General-knowledge questions, each used in two formats by `all`.
    static let questions: [String] = [
        "What is the capital of Australia?", "Who painted the Mona Lisa?", "How many legs does a spider have?",
        "What is the boiling point of water at sea level?", "Which planet is known as the Red Planet?",
        "Who wrote Pride and Prejudice?", "What is the largest ocean on Earth?", "When did the Berlin Wall fall?",
        "What language is spoken in Brazil?", "What is the chemical symbol for gold?", "Who discovered penicillin?",
        "How many continents are there?", "What is the tallest mountain in Africa?", "Which country has the most people?",
        "What currency is used in Japan?", "Who was the first person to walk on the Moon?", "What is the square root of 144?",
        "Which instrument has 88 keys?", "What gas do plants absorb from the air?", "Where is the Great Barrier Reef?",
        "Who composed the Four Seasons?", "What is the longest river in South America?", "Which organ pumps blood through the body?",
        "What year did the Titanic sink?", "What is the hardest natural substance?", "Who invented the telephone?",
        "What is the main ingredient of guacamole?", "Which sport is played at Wimbledon?", "What is the smallest prime number?",
        "Who is the author of The Old Man and the Sea?", "What is the freezing point of water in Fahrenheit?",
        "In which city is the Colosseum?", "What does DNA stand for?", "Which animal is the largest mammal?",
        "How many players are on a soccer team on the field?", "What is the capital city of Canada?",
        "Who developed the theory of general relativity?", "What is the primary language of Argentina?",
        "Which element has the atomic number 1?", "What is the name of the galaxy we live in?",
        "Who was the lead singer of Queen?", "What is the national flower of Japan?", "Which desert is the largest hot desert?",
        "How many bones are in the adult human body?", "Which company makes the iPhone?", "What is the speed of light?",
        "Who directed the movie Jaws?", "Where did the Olympic Games originate?", "What is the capital of Kenya?",
        "What kind of animal is a komodo dragon?", "Which river flows through Cairo?", "Who founded Microsoft?",
        "What is the most spoken language in the world?", "How long does it take the Earth to orbit the Sun?",
        "What position does a goalkeeper play?", "Which novel begins with Call me Ishmael?", "What is photosynthesis?",
        "Who is known as the father of computers?", "What is the capital of Spain?", "Which team won the first football World Cup?",
        "What is the record label of the Beatles?", "Who was Napoleon Bonaparte?", "What does a botanist study?",
        "What is the population of Tokyo?", "Which university is the oldest in England?", "What is the occupation of Sherlock Holmes?",
    ]

    /// Sentences to complete.
    static let completions: [String] = [
        "The Eiffel Tower is located in", "The official language of Mexico is", "Albert Einstein was born in",
        "The capital of Italy is", "Leonardo da Vinci was a famous", "The headquarters of Google are in",
        "Mount Everest is part of the", "The Amazon rainforest lies mostly in", "William Shakespeare wrote the play",
        "The chemical formula for water is", "The first emperor of Rome was", "Penguins mostly live in",
        "The iPhone was first released by", "Toronto is a city in", "The Nile river flows into the",
        "Marie Curie won the Nobel Prize in", "The Great Wall was built in", "Bananas are a good source of",
        "The mother tongue of Pablo Picasso is", "Lionel Messi plays the position of", "Mozart was born in the city of",
        "The Statue of Liberty was a gift from", "The main religion in Thailand is", "The Sahara desert covers much of",
        "Honda is a company based in", "The Louvre museum is home to", "The currency of the United Kingdom is the",
        "Saturn is famous for its", "The programming language Swift was created by", "A group of lions is called a",
        "The human heart has four", "Tea was first cultivated in", "The Danube river passes through",
        "BMW cars are manufactured in", "The piano was invented in", "Jazz music originated in",
        "The Olympic rings represent the", "The city of Sydney is known for its", "Chess is a game played on a",
        "The twin towers stood in", "Vincent van Gogh painted", "The Pacific Ocean is bordered by",
        "My favorite thing to do on weekends is", "Yesterday the weather in London was", "The recipe calls for two cups of",
        "Our company was founded in", "The train to Paris leaves from", "In the morning I usually drink",
        "The meeting has been moved to", "Scientists recently discovered that", "The best way to learn a language is",
        "According to the report, the economy", "The hospital is located next to", "Her first album was released in",
        "The football club plays its home games at", "The novel was translated into", "He studied law at the University of",
        "The treaty was signed in the year", "The software update fixes a bug in", "The village is famous for its",
    ]

    /// Chatty requests, as users type them.
    static let requests: [String] = [
        "Can you help me write an email to my boss?", "Tell me a joke about cats.", "Summarize the plot of Hamlet in two sentences.",
        "What should I cook for dinner tonight?", "Explain how a rainbow forms.", "Give me three tips for better sleep.",
        "Translate 'good morning' into French.", "Write a short poem about the sea.", "How do I reset my password?",
        "I feel tired today, any advice?", "Recommend a good science fiction book.", "What's the weather like in Paris in spring?",
        "Help me plan a trip to Rome.", "Why is the sky blue?", "How do I make pancakes?",
        "Can you explain recursion to a beginner?", "List some healthy snacks.", "What are the rules of chess?",
        "Write a haiku about autumn.", "How can I improve my resume?", "Describe a typical day of a nurse.",
        "What time is it in New York when it is noon in London?", "Please fix the grammar: he go to school yesterday.",
        "Give me a fun fact about octopuses.", "How many calories are in an apple?", "Suggest a name for my new puppy.",
        "What is the difference between weather and climate?", "Explain the stock market simply.",
        "hi there, how are you?", "I need a birthday message for my sister.", "What's a good workout for beginners?",
        "How do vaccines work?", "Tell me about the history of the internet.", "Convert 10 miles to kilometers.",
        "Why do cats purr?", "What are some good habits for studying?", "Write a limerick about a frog.",
        "How does a car engine work?", "What movies came out last summer?", "Can you recommend a podcast about history?",
    ]

    /// The texts without the question template (what `TokenWeights` are measured on).
    public static var untemplated: [String] { questions + completions + requests }

    /// The pool: questions templated and raw, completions, requests.
    public static let all: [String] = {
        var out: [String] = []
        for q in questions {
            out.append("Question: \(q)\nAnswer:")
            out.append(q)
        }
        out += completions
        out += requests
        return out
    }()
}

import Foundation
